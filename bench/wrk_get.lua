-- wrk script: GET the paths listed in a file, in order, round and round.
-- wrk -s bench/wrk_get.lua URL -- TOKEN PATHS_FILE
-- Ends with one JSON line of figures (wrk_report.lua).

local paths = {}
local next_path = 0

function init(args)
  headers = { ["Authorization"] = "Bearer " .. args[1] }
  for line in io.lines(args[2]) do
    if line ~= "" then table.insert(paths, line) end
  end
end

request = function()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path], headers)
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")
