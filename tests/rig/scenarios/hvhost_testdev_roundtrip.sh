# hvhost_testdev_roundtrip: hvhost test device: messages, events, EOM ordering, masked SINTs
# skip: needs hvhost's Hyper-V contract (issue 4)
