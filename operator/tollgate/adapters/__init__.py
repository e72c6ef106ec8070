"""tollgate.adapters"""
