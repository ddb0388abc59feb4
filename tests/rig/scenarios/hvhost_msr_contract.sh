# hvhost_msr_contract: every synthetic MSR, #GP cases and hypercall statuses under hvhost
# skip: needs hvhost's Hyper-V contract (issue 4)
