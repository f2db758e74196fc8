-- A module that returns one handler function.
return function(ctx) ctx.trace[#ctx.trace + 1] = "handler module" end
