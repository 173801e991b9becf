// edgecam browser viewer: JSON-RPC 2.0 over MQTT-over-WebSocket signalling (PROTOCOL.md
// sections 2-4) and one receive-only WebRTC session at a time. Plain ES module, no build step;
// mqtt.js comes from the classic script vendor/mqtt.min.js, which defines the global `mqtt`.
//
// Everything a device sends (status, errors, reasons) is shown with textContent, never as HTML.
// Every refusal (broker or device) is shown as a sentence made by refusals.js.

import {
  RPC_TIMEOUT_S, connackSentence, disconnectSentence, pubackSentence, rpcSentence,
  subackSentence, timeoutSentence, unreachableSentence, worthV311,
} from "./refusals.js";

const RPC_TIMEOUT_MS = RPC_TIMEOUT_S * 1000;
const STATS_INTERVAL_MS = 1000;
const RECONNECT_MS = 2000;
const CLOSE_GRACE_MS = 2000;
const DEVICE_STATS_INTERVAL_S = 1;
const MQTT_MISSING = "mqtt.js missing (vendor/mqtt.min.js): run `make web-deps`";
const FIELDS = ["broker", "username", "password", "client", "device", "prefix"];
const ERROR_NAMES = {
  [-32700]: "parse error", [-32600]: "invalid request", [-32601]: "method not found",
  [-32602]: "invalid params", [-32603]: "internal error", [-32001]: "unauthorized",
  [-32002]: "busy", [-32003]: "unknown session", [-32004]: "negotiation failed",
  [-32005]: "rate limited", [-32006]: "camera unavailable",
};

const $ = (id) => document.getElementById(id);
const form = $("connect-form");
const video = $("video");
const field = (name) => form.elements.namedItem(name);

let mq = null; // the mqtt.js client once connected
let cfg = null; // settings the current broker connection was made with
let brokerState = "disconnected";
let state = "idle"; // session: idle | offering | connecting | connected | failed | closed
let session = null; // {id, device, pc, offerSent, early[], remoteReady, remote[], timer, prev}
let deviceState = null;
let lastError = null;
let stats = {};
let deviceStats = {}; // the device's own session.stats over the control channel
const devices = new Map(); // device id -> status object as received
const replyTopics = new Map(); // reply topic -> Promise of its SUBACK
const pending = new Map(); // JSON-RPC id -> {resolve, reject, timer, method, device}
const pageTag = randomId(6); // keeps ids unique across reloads that reuse a client id
// The client id when neither Client id nor Username is filled in (kept for the page's life).
const randomClient = `viewer-${randomId(4)}`;
let clientSource = ""; // "field" | "username" | "random": where cfg.client came from
let nextId = 1;

// A JSON-RPC error from the device: `message` is the sentence shown, `remote` the device's own.
class RpcError extends Error {
  constructor(code, message, data, remote) {
    super(message);
    this.code = code;
    this.data = data;
    this.remote = remote;
  }
}

// The broker said no (CONNACK, PUBACK, SUBACK or DISCONNECT), or never answered; `code` is the
// MQTT reason code where there was one.
class BrokerError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

function randomId(bytes) {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
}

function describe(err) {
  if (err instanceof RpcError || err instanceof BrokerError) return err.message;
  if (err && typeof err.code === "number") return `${err.message} (code ${err.code})`;
  return String(err && err.message ? err.message : err);
}

function noteError(where, err) {
  const code = err instanceof RpcError || err instanceof BrokerError ? err.code ?? null : null;
  lastError = { where, code, message: describe(err) };
  console.warn(`edgecam ${where}: ${lastError.message}`);
  return lastError.message;
}

// ---- MQTT ---------------------------------------------------------------------------------

function setBroker(next, detail) {
  brokerState = next;
  document.body.dataset.broker = next;
  $("broker-status").textContent = detail ? `${next} (${detail})` : next;
  updateButtons();
}

function openBroker(s, version) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(s.broker, {
      protocolVersion: version, clientId: s.client, clean: true, keepalive: 30,
      username: s.username || undefined, password: s.password || undefined,
      reconnectPeriod: 0, connectTimeout: 10000,
    });
    const done = () => {
      client.off("connect", onConnect);
      client.off("error", onFail);
      client.off("close", onClose);
    };
    const onConnect = () => { done(); resolve(client); };
    const onFail = (err) => {
      done();
      client.end(true);
      // A number is a CONNACK refusal; anything else means the WebSocket never carried one.
      reject(typeof err.code === "number"
        ? new BrokerError(connackSentence(err.code, version, s), err.code)
        : new BrokerError(unreachableSentence(s.broker, location.protocol)));
    };
    const onClose = () => onFail({ code: undefined });
    client.on("connect", onConnect);
    client.on("error", onFail);
    client.on("close", onClose);
  });
}

// Once connected: why the broker ended the connection, in words, until it is back.
function watchConnection(client, s) {
  let said = null; // the sentence of the broker's DISCONNECT (MQTT 5), until the socket closes
  let up = true; // a close while up is the broker's doing (ours sets mq to null first)
  client.on("connect", () => { up = true; });
  const show = (err) => {
    if (mq === client) $("broker-error").textContent = noteError("broker", err);
  };
  client.on("disconnect", (packet) => {
    said = disconnectSentence(packet && packet.reasonCode, s);
    show(new BrokerError(said, packet && packet.reasonCode));
  });
  client.on("close", () => {
    if (mq !== client || !up) return; // our own end, or a reconnect attempt that failed
    if (!said) show(new BrokerError(disconnectSentence(undefined, s)));
    said = null;
    up = false;
  });
  client.on("error", (err) => {
    const sentence = typeof err.code === "number"
      ? connackSentence(err.code, client.options.protocolVersion, s)
      : unreachableSentence(s.broker, location.protocol);
    show(new BrokerError(sentence, typeof err.code === "number" ? err.code : undefined));
  });
}

// A name used inside a topic must not add levels or wildcards.
const topicSafe = (name) => name !== "" && !/[/+#]/.test(name);

async function connect() {
  if (mq) await disconnect();
  const s = Object.fromEntries(FIELDS.map((name) => [name, field(name).value.trim()]));
  // Brokers that pin roles and ACLs to accounts replace the client id with the user name
  // (mosquitto's use_username_as_clientid) without telling the client: the page's rpc/C topics
  // must use that same name, or every request is refused. So the user name is the default.
  clientSource = s.client ? "field" : s.username ? "username" : "random";
  s.client = s.client || s.username || randomClient;
  let client;
  try {
    if (typeof globalThis.mqtt === "undefined") throw new Error(MQTT_MISSING);
    if (!s.broker) throw new Error("a broker URL is needed");
    if (!topicSafe(s.client)) {
      throw new Error(`the client id "${s.client}" must not contain / + or # (it is part of MQTT topics)`);
    }
    if (!s.prefix || /[+#]/.test(s.prefix)) throw new Error("the topic prefix must be set and have no + #");
    $("broker-error").textContent = "";
    setBroker("connecting");
    client = await openBroker(s, 5).catch((err) => {
      if (!worthV311(err.code)) throw err;
      console.info(`edgecam: MQTT 5 refused (${describe(err)}); trying 3.1.1`);
      return openBroker(s, 4);
    });
  } catch (err) {
    setBroker("error");
    $("broker-error").textContent = noteError("broker", err);
    throw err;
  }
  mq = client;
  cfg = s;
  // From now on mqtt.js reconnects by itself and resubscribes what we subscribed.
  client.options.reconnectPeriod = RECONNECT_MS;
  client.on("message", onMessage);
  const version = client.options.protocolVersion === 5 ? "MQTT 5" : "MQTT 3.1.1";
  const shown = `${version}, client id ${s.client}`;
  watchConnection(client, s);
  client.on("connect", () => {
    $("broker-error").textContent = "";
    setBroker("connected", shown);
  });
  client.on("reconnect", () => setBroker("reconnecting"));
  client.on("offline", () => setBroker("reconnecting"));
  setBroker("connected", shown);
  try {
    await subscribe(`${s.prefix}/+/status`);
  } catch (err) {
    $("broker-error").textContent = noteError("broker", err);
    throw err;
  }
}

async function disconnect() {
  if (session) await closeSession().catch(() => {});
  const client = mq;
  mq = null;
  replyTopics.clear();
  for (const entry of pending.values()) {
    clearTimeout(entry.timer);
    entry.reject(new Error("disconnected from the broker"));
  }
  pending.clear();
  devices.clear();
  renderDevices();
  if (client) await new Promise((resolve) => client.end(false, {}, resolve));
  setBroker("disconnected");
}

async function subscribe(topic) {
  // A SUBACK code of 128 or more is a refusal, usually the broker's ACL.
  const refused = (code) => new BrokerError(subackSentence(topic, code), code);
  let granted;
  try {
    granted = await mq.subscribeAsync(topic, { qos: 1 });
  } catch (err) {
    throw typeof err.code === "number" ? refused(err.code) : err;
  }
  const bad = granted.find((g) => g.qos >= 128);
  if (bad) throw refused(bad.qos);
}

const requestTopic = (device) => `${cfg.prefix}/${device}/rpc/${cfg.client}`;

// The reply topic is subscribed (SUBACK received) before anything is published to the device.
function ensureReply(device) {
  if (!topicSafe(device)) throw new Error("the device id must be set and have no / + #");
  const topic = `${requestTopic(device)}/reply`;
  if (!replyTopics.has(topic)) {
    const sub = subscribe(topic);
    sub.catch(() => replyTopics.delete(topic));
    replyTopics.set(topic, sub);
  }
  return replyTopics.get(topic);
}

// The broker's refusal of a request (MQTT 5 PUBACK >= 0x80: its ACL, usually) fails the
// request at once with the reason; over 3.1.1 a refused publish is silent (see the timeout).
function publish(device, message) {
  const topic = requestTopic(device);
  mq.publish(topic, JSON.stringify(message), { qos: 1 }, (err) => {
    if (!err) return;
    const own = { client: cfg.client, rpcTopic: `${cfg.prefix}/+/rpc/${cfg.client}` };
    const refusal = typeof err.code === "number"
      ? new BrokerError(pubackSentence(topic, err.code, own), err.code)
      : err;
    const entry = message.id === undefined ? undefined : pending.get(message.id);
    if (entry) settle(message.id, entry).reject(refusal);
    else if (session && session.device === device) fail(session, refusal);
    else console.warn(`edgecam publish: ${describe(refusal)}`);
  });
}

function settle(id, entry) {
  pending.delete(id);
  clearTimeout(entry.timer);
  return entry;
}

// An entry of `pending`: how to settle it, and what to say if it goes wrong.
function awaitAnswer(id, method, device, overControl = false) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      const version = mq ? mq.options.protocolVersion : 5;
      reject(new Error(overControl
        ? `${method}: no answer from ${device} on the control channel within ${RPC_TIMEOUT_S} s.`
        : timeoutSentence(method, device, devices.get(device), version)));
    }, RPC_TIMEOUT_MS);
    pending.set(id, { resolve, reject, timer, method, device });
  });
}

// Publishes now (mqtt.js keeps publish order), resolves with the result or rejects RpcError.
function request(device, method, params) {
  const id = `${pageTag}-${nextId++}`;
  const answer = awaitAnswer(id, method, device);
  publish(device, { jsonrpc: "2.0", id, method, params });
  return answer;
}

async function rpc(device, method, params = {}) {
  // Once the session's `control` channel is open, its device is asked over it (PROTOCOL.md
  // section 6); webrtc.* and everything before the channel opens go over MQTT.
  const s = session;
  if (s && s.device === device && controlOpen(s) && !method.startsWith("webrtc.")) {
    return controlRequest(s, method, params);
  }
  if (!mq) throw new Error("not connected to a broker");
  if (!device) throw new Error("no device chosen");
  await ensureReply(device);
  return request(device, method, params);
}

function parseJson(payload) {
  try {
    return JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return undefined;
  }
}

function onMessage(topic, payload) {
  if (!cfg || !topic.startsWith(`${cfg.prefix}/`)) return;
  const parts = topic.slice(cfg.prefix.length + 1).split("/");
  if (parts.length === 2 && parts[1] === "status") {
    statusReceived(parts[0], payload);
  } else if (parts.length === 4 && parts[1] === "rpc" && parts[2] === cfg.client && parts[3] === "reply") {
    replyReceived(parseJson(payload));
  }
}

function replyReceived(msg) {
  if (!msg || typeof msg !== "object" || Array.isArray(msg)) return;
  if (typeof msg.method === "string") {
    notificationReceived(msg.method, msg.params);
    return;
  }
  const entry = pending.get(msg.id);
  if (!entry) return;
  settle(msg.id, entry);
  if (msg.error && typeof msg.error === "object") {
    const code = Number.isInteger(msg.error.code) ? msg.error.code : 0;
    const remote = String(msg.error.message ?? "error");
    const who = { client: cfg ? cfg.client : "", device: entry.device };
    const sentence = rpcSentence(entry.method, code, remote, msg.error.data, who);
    entry.reject(new RpcError(code, sentence, msg.error.data, remote));
  } else {
    entry.resolve(msg.result);
  }
}

function notificationReceived(method, params) {
  if (!session || !params || params.session !== session.id) return;
  if (method === "webrtc.candidate") remoteCandidate(session, params);
  else if (method === "webrtc.state") deviceStateChanged(session, params);
}

// ---- devices ------------------------------------------------------------------------------

function statusReceived(device, payload) {
  const status = payload.length ? parseJson(payload) : null;
  if (status === null) devices.delete(device); // retained status cleared
  else if (status && typeof status === "object" && !Array.isArray(status)) devices.set(device, status);
  else return;
  renderDevices();
}

function streamText(stream) {
  if (!stream || typeof stream !== "object") return "";
  const num = (v) => (Number.isFinite(Number(v)) ? Number(v) : null);
  const [w, h] = [num(stream.width), num(stream.height)];
  const [fps, bps] = [num(stream.framerate), num(stream.bitrate)];
  const parts = [];
  if (typeof stream.codec === "string") parts.push(stream.codec);
  if (w && h) parts.push(`${w}×${h}`);
  if (fps) parts.push(`${fps} fps`);
  if (bps) parts.push(`${(bps / 1e6).toFixed(2)} Mbit/s`);
  return parts.join(" ");
}

function renderDevices() {
  const list = $("devices");
  list.replaceChildren(...[...devices.keys()].sort().map((id) => {
    const status = devices.get(id);
    const online = status.state === "online";
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = `${id} `;
    const badge = document.createElement("span");
    badge.className = online ? "online" : "offline";
    badge.textContent = String(status.state ?? "unknown");
    name.append(badge);
    const detail = document.createElement("span");
    detail.className = "detail";
    const viewers = Number.isInteger(status.viewers) ? `${status.viewers} viewer(s)` : "";
    detail.textContent = [viewers, streamText(status.stream)].filter(Boolean).join(" · ");
    const watch = document.createElement("button");
    watch.type = "button";
    watch.textContent = "Watch";
    watch.setAttribute("aria-label", `Watch ${id}`);
    watch.disabled = !online;
    watch.addEventListener("click", () => {
      field("device").value = id;
      play(id).catch(() => {});
    });
    item.append(name, detail, watch);
    return item;
  }));
  $("no-devices").hidden = devices.size > 0;
}

// ---- session ------------------------------------------------------------------------------

function setState(next, reason) {
  if (next !== state) {
    console.info(`edgecam session ${state} -> ${next}${reason ? `: ${reason}` : ""}`);
  }
  state = next;
  document.body.dataset.state = next;
  $("session-status").textContent = reason ? `${next} (${reason})` : next;
  updateButtons();
}

function iceServers() {
  const raw = new URLSearchParams(location.search).get("ice");
  if (!raw) return [];
  const servers = JSON.parse(raw);
  if (!Array.isArray(servers)) throw new Error("the ice parameter must be a JSON array of RTCIceServer");
  return servers;
}

// The `control` channel is created before createOffer, so the offer carries an
// m=application section. Its responses share `pending` with MQTT (ids are unique per page).
function attachControlChannel(s, pc) {
  const channel = pc.createDataChannel("control", { ordered: true });
  s.control = channel;
  channel.onopen = () => {
    if (session !== s) return;
    setControlTransport("datachannel");
    controlRequest(s, "session.subscribe_stats", { session: s.id, interval: DEVICE_STATS_INTERVAL_S })
      .catch((err) => noteError("session.subscribe_stats", err));
  };
  channel.onclose = () => { if (session === s) setControlTransport("mqtt"); };
  channel.onmessage = (e) => {
    if (session !== s || typeof e.data !== "string") return;
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    if (msg && typeof msg.method === "string") controlNotification(s, msg.method, msg.params);
    else replyReceived(msg);
  };
  return channel;
}

const controlOpen = (s) => Boolean(s.control && s.control.readyState === "open");

function setControlTransport(name) {
  $("control-transport").textContent = name;
  document.body.dataset.control = name;
}

function controlRequest(s, method, params) {
  const id = `${pageTag}-${nextId++}`;
  const answer = awaitAnswer(id, method, s.device, true);
  s.control.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
  return answer;
}

function controlNotification(s, method, params) {
  if (!params || typeof params !== "object") return;
  if (method === "session.stats" && params.session === s.id) {
    deviceStats = params;
    renderDeviceStats();
  } else if (method === "stream.changed") {
    $("stream-changed").textContent = `stream: ${streamText(params.stream)}`;
  }
}

function renderDeviceStats() {
  const show = (id, value) => { $(id).textContent = value ?? "–"; };
  const d = deviceStats;
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  show("dev-bitrate", num(d.bitrate) === null ? null : `${(d.bitrate / 1000).toFixed(0)} kbit/s`);
  show("dev-fps", num(d.fps) === null ? null : d.fps.toFixed(1));
  show("dev-rtt", num(d.rtt) === null ? null : `${(d.rtt * 1000).toFixed(1)} ms`);
  show("dev-loss", num(d.fraction_lost) === null ? null : `${(d.fraction_lost * 100).toFixed(1)} %`);
  show("dev-nacks", num(d.nacks) === null ? null : String(d.nacks));
  show("dev-keyframes", num(d.keyframes) === null ? null : String(d.keyframes));
}

async function play(device = field("device").value.trim()) {
  if (!device) throw new Error("no device chosen");
  if (!mq) throw new Error("not connected to a broker");
  if (session) await closeSession().catch(() => {});
  const s = {
    id: `s-${randomId(8)}`, device, pc: null, offerSent: false, early: [], endSent: false,
    remoteReady: false, remote: [], timer: null, prev: null, control: null,
  };
  session = s;
  deviceState = null;
  $("device-state").textContent = "";
  stats = {};
  renderStats();
  deviceStats = {};
  renderDeviceStats();
  setControlTransport("mqtt");
  lastError = null;
  $("session-error").textContent = "";
  $("play-result").textContent = "";
  $("player-title").textContent = `Stream: ${device}`;
  setState("offering");
  try {
    await ensureReply(device);
    if (session !== s) return;
    const pc = new RTCPeerConnection({ iceServers: iceServers() });
    s.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    attachControlChannel(s, pc);
    pc.ontrack = (e) => { video.srcObject = e.streams[0] ?? new MediaStream([e.track]); };
    pc.onicecandidate = (e) => {
      const candidate = e.candidate && e.candidate.candidate ? e.candidate : null;
      if (s.offerSent) sendCandidate(s, candidate);
      else s.early.push(candidate);
    };
    pc.onconnectionstatechange = () => connectionChanged(s);
    await pc.setLocalDescription(await pc.createOffer());
    if (session !== s) return; // closed or replaced meanwhile; end() closed the pc
    const answer = request(device, "webrtc.offer", { session: s.id, sdp: pc.localDescription.sdp });
    s.offerSent = true;
    for (const candidate of s.early.splice(0)) sendCandidate(s, candidate);
    s.timer = setInterval(() => sampleStats(s).catch(() => {}), STATS_INTERVAL_MS);
    const result = await answer;
    if (session !== s) return;
    if (!result || typeof result.sdp !== "string") throw new Error("webrtc.offer: the answer has no sdp");
    await pc.setRemoteDescription({ type: "answer", sdp: result.sdp });
    s.remoteReady = true;
    for (const params of s.remote.splice(0)) remoteCandidate(s, params);
    if (state === "offering") setState("connecting");
  } catch (err) {
    fail(s, err);
    throw err;
  }
}

function sendCandidate(s, candidate) {
  if (session !== s || !mq || s.endSent) return;
  s.endSent = candidate === null;
  const params = { session: s.id, candidate: candidate ? candidate.candidate : null };
  if (candidate) {
    if (candidate.sdpMid != null) params.sdpMid = candidate.sdpMid;
    if (candidate.sdpMLineIndex != null) params.sdpMLineIndex = candidate.sdpMLineIndex;
    if (candidate.usernameFragment) params.usernameFragment = candidate.usernameFragment;
  }
  publish(s.device, { jsonrpc: "2.0", method: "webrtc.candidate", params });
}

function remoteCandidate(s, params) {
  if (!s.remoteReady) {
    s.remote.push(params);
    return;
  }
  const text = params.candidate;
  if (text === null || text === undefined || text === "") {
    // End of candidates; older browsers refuse the argument-less form, which changes nothing.
    s.pc.addIceCandidate().catch(() => {});
    return;
  }
  if (typeof text !== "string") return;
  const init = { candidate: text.startsWith("candidate:") ? text : `candidate:${text}` };
  if (typeof params.sdpMid === "string") init.sdpMid = params.sdpMid;
  if (Number.isInteger(params.sdpMLineIndex)) init.sdpMLineIndex = params.sdpMLineIndex;
  if (init.sdpMid === undefined && init.sdpMLineIndex === undefined) init.sdpMLineIndex = 0;
  s.pc.addIceCandidate(init).catch((err) => noteError("remote candidate", err));
}

function deviceStateChanged(s, params) {
  const reason = typeof params.reason === "string" ? params.reason : "";
  deviceState = { state: String(params.state), reason };
  $("device-state").textContent = `device: ${deviceState.state}${reason ? ` (${reason})` : ""}`;
  if (params.state === "failed") fail(s, new Error(`device: ${reason || "session failed"}`));
  else if (params.state === "closed") end(s, "closed", reason || "closed by the device");
}

function connectionChanged(s) {
  if (session !== s) return;
  const pcState = s.pc.connectionState;
  if (pcState === "connected") setState("connected");
  else if (pcState === "failed") fail(s, new Error("ICE/DTLS connection failed"));
}

function end(s, next, reason) {
  if (session !== s) return;
  clearInterval(s.timer);
  if (s.pc) s.pc.close();
  setControlTransport("mqtt");
  video.srcObject = null;
  session = null;
  setState(next, reason);
}

function fail(s, err) {
  if (session !== s) return;
  // Tell the device, unless it told us: otherwise it keeps the session (and a viewer slot)
  // until ICE consent runs out. A notification: there is nothing to wait for.
  const deviceFailed = err instanceof Error && err.message.startsWith("device:");
  if (mq && !deviceFailed) {
    publish(s.device, { jsonrpc: "2.0", method: "webrtc.close", params: { session: s.id } });
  }
  $("session-error").textContent = noteError("session", err);
  end(s, "failed", err instanceof RpcError ? ERROR_NAMES[err.code] ?? "error" : "");
}

// Asks the device first: closing our end first would make the device drop the session on the
// DTLS close_notify and answer the request with "unknown session". A device that does not
// answer soon gets its session closed anyway (it also notices through ICE consent).
async function closeSession() {
  const s = session;
  if (!s) return;
  try {
    if (!mq) return;
    const answer = request(s.device, "webrtc.close", { session: s.id });
    answer.catch(() => {}); // when the grace period wins the race below
    const grace = new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS));
    await Promise.race([answer, grace]);
  } finally {
    end(s, "closed", "closed by the viewer");
  }
}

// ---- stats --------------------------------------------------------------------------------

async function sampleStats(s) {
  if (session !== s || !s.pc) return;
  const report = await s.pc.getStats();
  let inbound = null;
  let pair = null;
  report.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") inbound = r;
    if (r.type === "transport" && r.selectedCandidatePairId) {
      pair = report.get(r.selectedCandidatePairId);
    }
  });
  if (!pair) {
    report.forEach((r) => {
      if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r;
    });
  }
  const next = { timestamp: Date.now(), connectionState: s.pc.connectionState };
  if (pair && typeof pair.currentRoundTripTime === "number") next.rtt = pair.currentRoundTripTime;
  if (inbound) {
    const prev = s.prev;
    const dt = prev ? (inbound.timestamp - prev.timestamp) / 1000 : 0;
    next.bytesReceived = inbound.bytesReceived ?? 0;
    next.framesDecoded = inbound.framesDecoded ?? 0;
    next.packetsLost = inbound.packetsLost ?? 0;
    if (dt > 0) next.bitrate = Math.round(((next.bytesReceived - prev.bytesReceived) * 8) / dt);
    if (typeof inbound.framesPerSecond === "number") next.fps = inbound.framesPerSecond;
    else if (dt > 0) next.fps = (next.framesDecoded - prev.framesDecoded) / dt;
    if (inbound.frameWidth) [next.width, next.height] = [inbound.frameWidth, inbound.frameHeight];
    const codec = inbound.codecId ? report.get(inbound.codecId) : null;
    if (codec) {
      const profile = /profile-level-id=([0-9a-fA-F]{6})/.exec(codec.sdpFmtpLine ?? "");
      next.codec = codec.mimeType.replace(/^video\//, "") + (profile ? ` ${profile[1]}` : "");
    }
    s.prev = { ...next, timestamp: inbound.timestamp };
  }
  if (session !== s) return;
  stats = next;
  renderStats();
}

function renderStats() {
  const show = (id, value) => { $(id).textContent = value ?? "–"; };
  const kbps = stats.bitrate === undefined ? null : `${(stats.bitrate / 1000).toFixed(0)} kbit/s`;
  show("stat-bitrate", kbps);
  show("stat-fps", stats.fps === undefined ? null : stats.fps.toFixed(1));
  show("stat-rtt", stats.rtt === undefined ? null : `${(stats.rtt * 1000).toFixed(1)} ms`);
  show("stat-resolution", stats.width ? `${stats.width}×${stats.height}` : null);
  show("stat-codec", stats.codec);
  show("stat-frames", stats.framesDecoded === undefined ? null : String(stats.framesDecoded));
}

// ---- controls -----------------------------------------------------------------------------

const targetDevice = () => (session ? session.device : field("device").value.trim());

async function control(id, action) {
  const out = $(`${id}-result`);
  out.className = "";
  out.textContent = "…";
  try {
    out.textContent = await action();
  } catch (err) {
    out.className = "error";
    out.textContent = noteError(id, err);
  }
}

function showSnapshot(result) {
  const data = result && typeof result.data === "string" ? result.data : "";
  if (result?.mime !== "image/jpeg" || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) {
    throw new Error("camera.snapshot: the answer is not a base64 JPEG");
  }
  $("snapshot-image").src = `data:image/jpeg;base64,${data}`;
  const when = new Date().toLocaleTimeString();
  $("snapshot-caption").textContent = `${Number(result.width)}×${Number(result.height)}, ${when}`;
  $("snapshot-figure").hidden = false;
  return "ok";
}

const controls = {
  play: async () => { await play(); return ""; },
  keyframe: async () => { await rpc(targetDevice(), "stream.keyframe"); return "requested"; },
  "set-bitrate": async () => {
    const kbps = Number($("bitrate").value);
    if (!Number.isFinite(kbps) || kbps <= 0) throw new Error("enter a bitrate in kbit/s");
    const applied = await rpc(targetDevice(), "stream.set", { bitrate: Math.round(kbps * 1000) });
    return `applied ${Math.round(Number(applied?.bitrate) / 1000)} kbit/s`;
  },
  snapshot: async () => showSnapshot(await rpc(targetDevice(), "camera.snapshot")),
  close: async () => { await closeSession(); return "closed"; },
};

function updateButtons() {
  const connected = brokerState === "connected";
  const hasDevice = Boolean(targetDevice());
  $("connect").disabled = brokerState === "connecting";
  $("disconnect").disabled = !mq;
  $("play").disabled = !connected || !hasDevice;
  for (const id of ["keyframe", "set-bitrate", "snapshot"]) $(id).disabled = !connected || !hasDevice;
  $("close").disabled = !session;
}

// ---- start --------------------------------------------------------------------------------

for (const [id, action] of Object.entries(controls)) {
  $(id).addEventListener("click", () => control(id, action));
}
form.addEventListener("submit", (e) => {
  e.preventDefault();
  connect().catch(() => {});
});
$("disconnect").addEventListener("click", () => disconnect().catch(() => {}));
field("device").addEventListener("input", updateButtons);
window.addEventListener("pagehide", () => {
  // Best effort: lets the device free the session at once instead of waiting for ICE consent.
  if (!session || !mq) return;
  publish(session.device, { jsonrpc: "2.0", method: "webrtc.close", params: { session: session.id } });
});

window.edgecam = {
  get state() { return state; },
  get broker() { return brokerState; },
  get session() { return session ? session.id : null; },
  get device() { return session ? session.device : null; },
  get deviceState() { return deviceState; },
  get pc() { return session ? session.pc : null; },
  get control() { return session && controlOpen(session) ? session.control : null; },
  deviceStats: () => ({ ...deviceStats }),
  get lastError() { return lastError; },
  // The MQTT client id in use (or to be used) and why: "field" | "username" | "random".
  get clientId() { return cfg ? cfg.client : null; },
  get clientSource() { return clientSource; },
  stats: () => ({ ...stats }),
  framesDecoded: () => stats.framesDecoded ?? 0,
  devices: () => [...devices].map(([id, status]) => ({ device: id, ...status })),
  connect, disconnect, play, close: closeSession,
  rpc: (method, params) => rpc(targetDevice(), method, params),
  // Only over the control channel (for tests and the console); rejects before it is open.
  controlRpc: (method, params = {}) => (session && controlOpen(session)
    ? controlRequest(session, method, params)
    : Promise.reject(new Error("the control channel is not open"))),
};

const query = new URLSearchParams(location.search);
for (const name of FIELDS) if (query.has(name)) field(name).value = query.get(name);
updateButtons();
if (typeof globalThis.mqtt === "undefined") {
  $("broker-error").textContent = noteError("startup", new Error(MQTT_MISSING));
} else if (query.get("autoplay") === "1" && field("broker").value && field("device").value) {
  connect().then(() => play()).catch(() => {});
}
document.body.dataset.ready = "1";
