# hvhost_bad_input: hvhost rejects bad kernels and bad --memory/--cpus with a clear error
# skip: needs hvhost booting Linux (issue 3)
