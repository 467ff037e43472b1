"""archscale.clusters"""
