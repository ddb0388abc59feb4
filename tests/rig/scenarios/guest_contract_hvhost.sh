# guest_contract_hvhost: hv_guest hypercalls and SynIC against hvhost --test-device
# skip: needs hv_guest's hypercall page and SynIC (issue 5) and hvhost (issue 4)
