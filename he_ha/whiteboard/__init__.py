"""The metadata whiteboard: its byte format (codec) and O_DIRECT slot I/O."""
