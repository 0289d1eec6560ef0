-- wrk script: POST fresh dropoff events to ingest, one per request or a batch per request.
-- wrk -s bench/wrk_post.lua URL -- TOKEN MODE   (MODE: single | batch500)
-- Ends with one JSON line of figures (wrk_report.lua).

local threads = {}
local thread_number = 0

function setup(thread)
  thread:set("thread_number", thread_number)
  thread_number = thread_number + 1
  table.insert(threads, thread)
end

function init(args)
  token = args[1]
  mode = args[2] or "single"
  per_request = 1
  if mode == "batch500" then per_request = 500 end
  counter = 0
  math.randomseed(os.time() * 1000 + thread_number)
  run = string.format("%06x", math.random(0, 0xffffff))
  occurred = os.date("!%Y-%m-%dT%H:%M:%S+00:00", os.time() - 300)
  headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
end

local function event()
  counter = counter + 1
  local id = string.format("%08x-%04x-4%03x-8%03x-%012x",
    math.random(0, 0x7fffffff), thread_number, math.random(0, 0xfff), math.random(0, 0xfff), counter)
  return '{"event_id":"' .. id .. '","type":"dropoff","container_id":"W' .. run .. '-' ..
    thread_number .. '-' .. counter .. '","occurred_at":"' .. occurred ..
    '","location_id":"loc-bench","chemistry":"li_ion","battery_count":40}'
end

request = function()
  if per_request == 1 then
    return wrk.format("POST", "/v1/events", headers, event())
  end
  local events = {}
  for i = 1, per_request do events[i] = event() end
  return wrk.format("POST", "/v1/events/batch", headers,
    '{"events":[' .. table.concat(events, ",") .. ']}')
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")
