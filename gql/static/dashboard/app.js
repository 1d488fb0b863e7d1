// The reference dashboard of checkin-realtime: plain WebSocket code speaking
// graphql-transport-ws (no build step, no library), over one socket to
// ../graphql.
//
// * Overview: userStatuses (pages of 100, most urgent first) and the live
//   userStatusFeed; each user's newest version wins, whichever came first.
// * One person: the dashboard subscription. A message with reset: true
//   replaces the view; a delta (seq + 1) is applied to it. On reconnect the
//   page subscribes again with after = the last seq applied, so the server
//   replays what was missed (or sends a fresh snapshot). A delta that does not
//   follow the view's seq means a message was lost (RESPONSE_TOO_LARGE): the
//   page starts over without after.
// * Credentials: none in dev mode. Otherwise the server closes the socket
//   with 4403 and the page asks for a token. The token lives in one variable
//   of this module for the life of the page: it is never logged, stored, or
//   put in a URL, and it is sent only in connection_init.

const PROTOCOL = "graphql-transport-ws";
const KEEP = 20; // activities in the person view
const PAGE = 100; // users per overview page
const RETRY_MS = [500, 1000, 2000, 5000];
const LEVELS = ["EMERGENCY", "ALERT", "WARNING", "NONE"];
const NEVER = Number.POSITIVE_INFINITY;

const STATUS = "userId alertLevel nextDue lastCheckIn alertTriggeredAt version seq";
const OVERVIEW = `query Overview($first: Int!, $after: String) {
  userStatuses(first: $first, after: $after) {
    edges { node { ${STATUS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const FEED = `subscription StatusFeed { userStatusFeed { ${STATUS} } }`;
const DASHBOARD = `subscription Dashboard($userId: String!, $after: Int, $activities: Int) {
  dashboard(userId: $userId, after: $after, activities: $activities) {
    seq reset
    status { ${STATUS} }
    activities { id seq type description timestamp metadata }
  }
}`;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- transport

/** One graphql-transport-ws socket; operations are re-sent by their owners on reconnect. */
class Connection {
  constructor(url, { onReady, onClosed }) {
    this.url = url;
    this.onReady = onReady;
    this.onClosed = onClosed;
    this.token = null;
    this.socket = null;
    this.sinks = new Map(); // operation id -> {next, error, complete}
    this.nextId = 1;
    this.attempt = 0;
    this.timer = null;
  }

  connect(token = this.token) {
    this.token = token;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000);
    const socket = new WebSocket(this.url, PROTOCOL);
    this.socket = socket;
    this.acked = false;
    setState("connecting");
    socket.onopen = () => {
      const payload = this.token ? { authorization: `Bearer ${this.token}` } : {};
      socket.send(JSON.stringify({ type: "connection_init", payload }));
    };
    socket.onmessage = (event) => this.receive(socket, event.data);
    socket.onclose = (event) => this.closed(socket, event);
  }

  receive(socket, data) {
    if (socket !== this.socket) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === "connection_ack") {
      this.acked = true;
      this.attempt = 0;
      setState("connected");
      this.onReady();
    } else if (message.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
    } else if (message.type === "next" || message.type === "error" || message.type === "complete") {
      const sink = this.sinks.get(message.id);
      if (!sink) return;
      if (message.type !== "next") this.sinks.delete(message.id);
      sink[message.type](message.payload);
    }
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    const acked = this.acked;
    this.acked = false;
    const sinks = [...this.sinks.values()];
    this.sinks.clear();
    for (const sink of sinks) sink.lost?.();
    // 4403: no or a refused token. Retrying with the same one cannot help.
    const refused = event.code === 4403;
    setState(refused ? "refused" : "closed");
    this.onClosed({ refused, acked, code: event.code });
    if (refused) return;
    const delay = RETRY_MS[Math.min(this.attempt, RETRY_MS.length - 1)];
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Start an operation; returns a function that stops it, or null while disconnected. */
  run(query, variables, sink) {
    if (!this.socket || !this.acked) return null;
    const id = String(this.nextId++);
    this.sinks.set(id, sink);
    this.socket.send(JSON.stringify({ id, type: "subscribe", payload: { query, variables } }));
    return () => {
      if (this.sinks.delete(id) && this.socket) {
        this.socket.send(JSON.stringify({ id, type: "complete" }));
      }
    };
  }
}

function setState(state) {
  const badge = $("connection");
  badge.dataset.state = state;
  badge.textContent = state;
}

// Errors that a retry cannot mend: the operation ends for good.
const FINAL = new Set(["FORBIDDEN", "UNAUTHENTICATED", "BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"]);

function isFinal(errors) {
  return (errors ?? []).some((error) => FINAL.has(error.extensions?.code));
}

function errorText(errors) {
  const [first] = errors ?? [];
  if (!first) return "unknown error";
  const code = first.extensions?.code;
  return code ? `${code}: ${first.message}` : first.message;
}

// ---------------------------------------------------------------- formatting

function dueKey(status) {
  return status.nextDue ? Date.parse(status.nextDue) : NEVER;
}

/** The server's urgency order: level, then nextDue (none last), then userId. */
function urgency(a, b) {
  const level = LEVELS.indexOf(a.alertLevel) - LEVELS.indexOf(b.alertLevel);
  if (level !== 0) return level;
  const [dueA, dueB] = [dueKey(a), dueKey(b)];
  if (dueA !== dueB) return dueA < dueB ? -1 : 1;
  return a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0;
}

function relative(iso) {
  if (!iso) return "";
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  const size = Math.abs(seconds);
  if (size === 0) return "now";
  const amount =
    size < 120 ? `${size}s` : size < 7200 ? `${Math.round(size / 60)}min` : `${Math.round(size / 3600)}h`;
  return seconds >= 0 ? `in ${amount}` : `${amount} ago`;
}

function stamp(iso) {
  if (!iso) return "—";
  return `${new Date(iso).toLocaleTimeString()} (${relative(iso)})`;
}

function isOverdue(status) {
  return Boolean(status.nextDue) && Date.parse(status.nextDue) < Date.now();
}

function levelBadge(level) {
  const badge = document.createElement("span");
  badge.className = `level level-${level}`;
  badge.textContent = level;
  return badge;
}

// ---------------------------------------------------------------- overview

const overview = {
  users: new Map(), // userId -> status
  cursor: null,
  more: false,
  stopFeed: null,
};

/** Keep the newer of two versions of a user's status. */
function remember(status) {
  const known = overview.users.get(status.userId);
  if (!known || status.version >= known.version) overview.users.set(status.userId, status);
}

function renderOverview() {
  const rows = [...overview.users.values()].sort(urgency);
  const body = $("users");
  body.replaceChildren(
    ...rows.map((status) => {
      const row = document.createElement("tr");
      row.dataset.userId = status.userId;
      row.dataset.alertLevel = status.alertLevel;
      row.dataset.version = String(status.version);
      if (status.userId === person.userId) row.classList.add("selected");
      const user = document.createElement("td");
      user.textContent = status.userId;
      const level = document.createElement("td");
      level.append(levelBadge(status.alertLevel));
      const due = document.createElement("td");
      due.textContent = status.nextDue ? relative(status.nextDue) : "—";
      if (isOverdue(status)) {
        due.classList.add("overdue");
        row.dataset.overdue = "true";
      }
      const last = document.createElement("td");
      last.textContent = status.lastCheckIn ? relative(status.lastCheckIn) : "—";
      row.append(user, level, due, last);
      row.addEventListener("click", () => openPerson(status.userId));
      return row;
    }),
  );
  $("overview-empty").hidden = rows.length > 0;
  $("more").hidden = !overview.more;
}

function loadPage(after) {
  connection.run(OVERVIEW, { first: PAGE, after }, {
    next: (result) => {
      if (result.errors) return showOverviewError(errorText(result.errors));
      const page = result.data.userStatuses;
      for (const edge of page.edges) remember(edge.node);
      overview.cursor = page.pageInfo.endCursor;
      overview.more = page.pageInfo.hasNextPage;
      $("overview-error").hidden = true;
      renderOverview();
    },
    error: (errors) => showOverviewError(errorText(errors)),
    complete: () => {},
  });
}

function startOverview() {
  if (overview.stopFeed) return;
  let final = false;
  // The feed first, then the page: a change between the two is not lost,
  // and versions decide which copy of a user is newer.
  overview.stopFeed = connection.run(FEED, {}, {
    next: (result) => {
      if (result.errors) {
        final = isFinal(result.errors);
        return showOverviewError(errorText(result.errors));
      }
      remember(result.data.userStatusFeed);
      renderOverview();
    },
    error: (errors) => showOverviewError(errorText(errors)),
    // Ended by the server (a lost broker, say): subscribe again and reload.
    complete: () => {
      overview.stopFeed = null;
      if (!final) setTimeout(() => connection.acked && startOverview(), 1000);
    },
  });
  loadPage(null);
}

function showOverviewError(text) {
  const element = $("overview-error");
  element.textContent = text;
  element.hidden = false;
}

// ---------------------------------------------------------------- one person

const person = {
  userId: null,
  seq: null, // the watermark of the view: the last seq applied
  status: null,
  activities: [],
  keep: KEEP, // activities asked for; halved when a snapshot was too large to send
  stop: null,
  retry: null,
};

function openPerson(userId) {
  if (person.stop) person.stop();
  clearTimeout(person.retry);
  Object.assign(person, { userId, seq: null, status: null, activities: [], keep: KEEP, stop: null });
  $("person").hidden = false;
  $("person").dataset.userId = userId;
  $("person-id").textContent = userId;
  $("person-error").hidden = true;
  renderPerson();
  renderOverview();
  followPerson();
}

function followPerson() {
  const userId = person.userId;
  if (userId === null || person.stop || !connection.acked) return;
  let final = false;
  const resume = () => {
    person.stop = null;
    if (person.userId !== userId) return;
    clearTimeout(person.retry);
    person.retry = setTimeout(followPerson, 1000);
  };
  person.stop = connection.run(
    DASHBOARD,
    { userId, after: person.seq, activities: person.keep },
    {
      next: (result) => {
        if (person.userId !== userId) return;
        if (result.errors) {
          final = isFinal(result.errors);
          showPersonError(errorText(result.errors));
          // The message was not sent (over MAX_RESPONSE_BYTES): if it was a
          // snapshot, ask again for a smaller one.
          const tooLarge = result.errors.some((e) => e.extensions?.code === "RESPONSE_TOO_LARGE");
          if (tooLarge && person.keep > 1) {
            person.keep = Math.max(1, Math.floor(person.keep / 2));
            restartPerson();
          }
          return;
        }
        apply(result.data.dashboard);
      },
      // The server refused the document: a retry would be refused too.
      error: (errors) => {
        person.stop = null;
        if (person.userId === userId) showPersonError(errorText(errors));
      },
      // Ended by the server (BROKER_DISCONNECTED, say): resume from the watermark.
      complete: () => (final ? (person.stop = null) : resume()),
      // The socket dropped: the connection's ready hook resumes us.
      lost: () => {
        person.stop = null;
      },
    },
  );
}

/** Start over without after: the next message is a fresh snapshot. */
function restartPerson() {
  person.stop?.();
  person.stop = null;
  person.seq = null;
  followPerson();
}

function apply(update) {
  if (update.reset) {
    person.status = update.status;
    person.activities = update.activities.slice(0, person.keep);
  } else {
    if (person.seq !== null && update.seq <= person.seq) return; // applied already
    // A delta applies to the view at seq - 1 only; anything else means a
    // message was lost (see RESPONSE_TOO_LARGE): start over from a snapshot.
    if (person.seq === null || update.seq !== person.seq + 1) return restartPerson();
    if (update.status) person.status = update.status;
    person.activities = [...update.activities, ...person.activities].slice(0, person.keep);
  }
  person.seq = update.seq;
  $("person-error").hidden = true;
  if (person.status) {
    remember(person.status);
    renderOverview();
  }
  renderPerson();
}

function renderPerson() {
  const panel = $("person");
  panel.dataset.seq = person.seq === null ? "" : String(person.seq);
  const status = person.status;
  const fields = panel.querySelectorAll("[data-field]");
  for (const field of fields) {
    const name = field.dataset.field;
    if (name === "seq") {
      field.textContent = person.seq === null ? "—" : String(person.seq);
    } else if (!status) {
      field.textContent = name === "alertLevel" ? "no status" : "—";
    } else if (name === "alertLevel") {
      field.replaceChildren(levelBadge(status.alertLevel));
    } else {
      field.textContent = stamp(status[name]);
      field.classList.toggle("overdue", name === "nextDue" && isOverdue(status));
    }
  }
  panel.dataset.alertLevel = status ? status.alertLevel : "";
  $("feed").replaceChildren(
    ...person.activities.map((activity) => {
      const item = document.createElement("li");
      item.dataset.seq = String(activity.seq);
      item.dataset.type = activity.type;
      const type = document.createElement("span");
      type.className = `type type-${activity.type}`;
      type.textContent = activity.type;
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = stamp(activity.timestamp);
      const text = document.createElement("span");
      text.textContent = activity.description;
      item.append(type, when, text);
      if (activity.metadata && Object.keys(activity.metadata).length > 0) {
        const meta = document.createElement("span");
        meta.className = "meta";
        meta.textContent = JSON.stringify(activity.metadata);
        item.append(meta);
      }
      return item;
    }),
  );
}

function showPersonError(text) {
  const element = $("person-error");
  element.textContent = text;
  element.hidden = false;
}

// ---------------------------------------------------------------- start

const url = new URL("graphql", window.location.href);
url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
url.search = "";
url.hash = "";

const connection = new Connection(url.href, {
  onReady: () => {
    $("token-form").hidden = true;
    $("notice").hidden = true;
    startOverview();
    followPerson(); // resumes with after = the last seq applied
  },
  onClosed: ({ refused }) => {
    overview.stopFeed = null;
    if (refused) {
      const notice = $("notice");
      notice.textContent = connection.token
        ? "The server refused this token (expired or invalid). Enter another one."
        : "This server needs credentials: enter a token (an admin token shows everyone).";
      notice.hidden = false;
      $("token-form").hidden = false;
    }
  },
});

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("token");
  const token = input.value.trim();
  input.value = ""; // kept in memory only, for reconnects
  connection.connect(token || null);
});

$("open-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const userId = $("open-user").value.trim();
  if (userId) openPerson(userId);
});

$("more").addEventListener("click", () => loadPage(overview.cursor));

// Relative times ("in 8s", "3s ago") and overdue marks move with the clock.
setInterval(() => {
  renderOverview();
  renderPerson();
}, 1000);

connection.connect(null);
