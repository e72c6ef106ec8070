"""tollgate.cli"""
