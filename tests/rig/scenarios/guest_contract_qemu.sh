# guest_contract_qemu: hv_guest hypercalls and SynIC against QEMU's hyperv-testdev
# skip: needs hv_guest's hypercall page and SynIC (issue 5)
