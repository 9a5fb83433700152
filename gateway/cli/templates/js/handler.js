// {name}: a tiergate function in JavaScript (QuickJS-ng, built into a WASI module by make).
// The gateway calls handler(event, context) with the input JSON as event; what it returns (any
// JSON value, or a promise of one) is the output. console.log lines are log lines; a thrown
// error fails the call. context: { function_id, execution_id, trace_id }. There is no Node.js
// API here (no require, fs or fetch): plain ECMAScript 2023.
function handler(event, context) {
  const who = (event && event.name) || "world";
  console.log(`greeting ${who}`);
  return { message: `hello, ${who}!` };
}
