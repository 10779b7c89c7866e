"""Running a controller in the loop: inference backends, deadline monitoring, the EdgeDRNN model, board emulator."""
