# vmbus_stock_guest_hvhost: Linux's hv_vmbus and hv_utils connect to hvhost at VMBus 6.0
# skip: needs the VMBus server (issue 6)
