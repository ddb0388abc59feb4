# guest_hostile_host: malformed SynIC messages are counted and dropped
# skip: needs hv_guest's SynIC (issue 5)
