# vmbus_hvguest_qemu: hv_guest's VMBus client negotiates 4.0 with QEMU's vmbus-bridge
# skip: needs hv_guest's VMBus client (issue 6)
