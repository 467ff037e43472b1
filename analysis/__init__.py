"""archscale.analysis"""
