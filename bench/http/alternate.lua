-- wrk script: cycle through the paths given after `--`, one per request
-- (e.g. `wrk ... -s alternate.lua http://127.0.0.1:8080 -- /api/items/1 /ping`).
local requests = {}
local n = 0

function init(args)
  for i = 1, #args do
    requests[i] = wrk.format("GET", args[i])
  end
  if #requests == 0 then
    requests[1] = wrk.format("GET", "/")
  end
end

function request()
  n = n + 1
  return requests[(n % #requests) + 1]
end
