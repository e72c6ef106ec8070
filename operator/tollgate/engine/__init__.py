"""tollgate.engine"""
