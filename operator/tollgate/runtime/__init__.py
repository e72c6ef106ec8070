"""tollgate.runtime"""
