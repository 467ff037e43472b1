"""archscale.search"""
