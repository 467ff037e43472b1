"""archscale.search: running many trainings (strategies propose, Ray Tune trains, results files record)."""
