-- Argo CD health check for tollgate.dev/ModelDeployment.
-- Install under resource.customizations.health.tollgate.dev_ModelDeployment in argocd-cm
-- (see docs/operations.md). Tested with lupa against fixtures and statuses of the real operator
-- (tests/unit/packaging/test_argocd_health.py, tests/integration/packaging/test_operator_identity.py).
--
--   Progressing  no status yet, status older than the spec (observedGeneration), or Reconciling=True
--   Suspended    waiting for a person: spec.paused, an approval gate, or the kill switch holding
--                traffic on the pinned fallback
--   Degraded     Stalled=True: rolled back (or rolling back), invalid spec, or past the deadline
--   Healthy      Ready=True
local hs = {}

local function condition(status, type_)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function is_true(status, type_)
  local c = condition(status, type_)
  return c ~= nil and c.status == "True"
end

local function message(status, fallback)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Tollgate operator to observe the ModelDeployment"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Tollgate operator to observe generation " .. tostring(generation)
  return hs
end

if is_true(status, "Stalled") then
  hs.status = "Degraded"
  hs.message = message(status, "Stalled: " .. tostring(status.phase))
  return hs
end

local paused = (obj.spec ~= nil and obj.spec.paused == true) or status.phase == "Paused"
if paused then
  hs.status = "Suspended"
  hs.message = message(status, "Paused: weights hold until spec.paused is false")
  return hs
end

if status.phase == "AwaitingApproval" or is_true(status, "AwaitingApproval") then
  hs.status = "Suspended"
  hs.message = message(status, "Awaiting approval: annotate with tollgate.dev/approve")
  return hs
end

if status.phase == "Fallback" then
  hs.status = "Suspended"
  hs.message = message(status, "Kill switch on: all traffic on the pinned fallback")
  return hs
end

if is_true(status, "Ready") then
  hs.status = "Healthy"
  hs.message = message(status, "Serving " .. tostring(status.phase))
  return hs
end

hs.status = "Progressing"
hs.message = message(status, tostring(status.phase or "Reconciling"))
return hs
