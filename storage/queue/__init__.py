"""The durable work queue: every piece of asynchronous work (async invokes, triggered and chained
executions, schedules, retries, callbacks) waits here until a gateway process takes it, so a
process that dies mid-way loses none of it."""
