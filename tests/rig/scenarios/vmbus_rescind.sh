# vmbus_rescind: a device removed by hvhost unbinds cleanly in the guest
# skip: needs VMBus on both sides (issue 6)
