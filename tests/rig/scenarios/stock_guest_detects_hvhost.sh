# stock_guest_detects_hvhost: stock Linux with CONFIG_HYPERV detects hvhost's Hyper-V interface
# skip: needs hvhost's Hyper-V contract (issue 4)
