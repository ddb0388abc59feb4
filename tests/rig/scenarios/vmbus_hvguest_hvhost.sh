# vmbus_hvguest_hvhost: hv_guest's VMBus client under hvhost: devices, heartbeat, shutdown, timesync
# skip: needs VMBus on both sides (issue 6)
