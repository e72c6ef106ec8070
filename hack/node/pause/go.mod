module tollgate.local/pause

go 1.24
