"""Independent judges of media: measures that never see the models they score."""
