"""`kubectl tollgate dashboard`: a local web page of every rollout (optional extra `tollgate[dashboard]`)."""
