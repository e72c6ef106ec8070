"""The rollout's rules, one concern per module (the order a decision applies them is in engine.rollout).

kill_switch   the kill switch on and off (rule 2)
drills        kill-switch and rollback drills: started or refused, timed, released (rule 2b)
revisions     which revision runs: first deployment, supersede, rolled back stays, retry (rules 3-5)
steps         controls, pause, analysis ticks, steps and approval gates (rules 6, 7, 9, 10)
promotion     promoting: the stable track rolls to the canary revision
bake          the bake window after promotion: judged at full traffic, rolled back to lastKnownGood on failure
readiness     progress deadlines: pods not Ready in time roll back (rule 8), written once
rollback      a rollback and the phase after it
finish        the draft becomes the Decision: status, conditions, timeline, desired objects, actions, wakes
"""
