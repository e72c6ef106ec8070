"""tollgate_testkit"""
