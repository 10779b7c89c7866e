"""The plant: MJCF model generator, virtual human, sensors, gymnasium env, gait events and stability metrics."""
