"""tollgate.testing"""
