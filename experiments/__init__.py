"""What users run: data collection, training, evaluation, benchmarks, reports; the `legloop` CLI."""
