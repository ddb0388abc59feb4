# _uart_stream_lib: not a scenario of its own; what both sides of
# uart_stream_hvhost agree on.
# helper

UART_STREAM_ROUNDS=4
UART_STREAM_BYTES=16384
UART_STREAM_RTTS=20

# uart_stream_phases ROUNDS: the phases in order, one "OP BYTES" a line
# (OP as the server names it).
uart_stream_phases() {
	local i=0
	while [ $i -lt "$1" ]; do
		echo "sink $UART_STREAM_BYTES"
		echo "source $UART_STREAM_BYTES"
		echo "echo $UART_STREAM_RTTS"
		i=$((i + 1))
	done
}
