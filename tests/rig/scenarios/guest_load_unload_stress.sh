# guest_load_unload_stress: 100 load/unload cycles with SynIC traffic, no leaked irq/vector/memory
# skip: needs hv_guest's SynIC (issue 5)
