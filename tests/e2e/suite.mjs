// What the client suites share: their arguments, one JSON line per step on
// stdout, and one exit: 0 when the suite's assertions held, 1 on any failure
// (the reason on stderr), 2 when TIMEOUT_SECONDS passed first.
//
//   node <suite>.mjs HTTP_URL WS_URL USER_ID TIMEOUT_SECONDS

export function suiteArgs(name) {
  const [httpUrl, wsUrl, userId, timeoutArg] = process.argv.slice(2);
  if (!httpUrl || !wsUrl || !userId || !timeoutArg) {
    process.stderr.write(`usage: node ${name} HTTP_URL WS_URL USER_ID TIMEOUT_SECONDS\n`);
    process.exit(64);
  }
  return { httpUrl, wsUrl, userId, timeoutSeconds: Number.parseFloat(timeoutArg) };
}

export function emit(op, data) {
  process.stdout.write(`${JSON.stringify({ op, data })}\n`);
}

export function describe(value) {
  if (value instanceof Error) return value.stack || value.message;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

// Runs `main(cleanups)` and exits: `cleanups` are awaited first, in order.
export async function runSuite(name, timeoutSeconds, main) {
  const cleanups = [];
  let exited = false;
  const exit = async (code, message) => {
    if (exited) return;
    exited = true;
    if (message) process.stderr.write(`${name}: ${message}\n`);
    for (const cleanup of cleanups) {
      try {
        await cleanup();
      } catch {
        // Already gone.
      }
    }
    process.stdout.write("", () => process.exit(code));
  };
  const deadline = setTimeout(() => exit(2, `timed out after ${timeoutSeconds}s`), timeoutSeconds * 1000);
  try {
    await main(cleanups);
    clearTimeout(deadline);
    await exit(0);
  } catch (error) {
    clearTimeout(deadline);
    await exit(1, describe(error));
  }
}

// A GraphQL POST that is not made by the client under test: a change the
// client can only learn of through its subscription.
export async function post(httpUrl, query, variables) {
  const response = await fetch(httpUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (!response.ok || body.errors) throw new Error(`POST answered ${response.status}: ${describe(body)}`);
  return body.data;
}

// An async queue of a subscription's results: `await next()` takes the next one.
export function queue() {
  const items = [];
  const waiters = [];
  return {
    push(item) {
      const waiter = waiters.shift();
      if (waiter) waiter(item);
      else items.push(item);
    },
    next() {
      if (items.length) return Promise.resolve(items.shift());
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}
