// Every refusal the page can meet, as a sentence a person can act on: the broker's CONNACK,
// PUBACK and DISCONNECT reason codes (MQTT 3.1.1 and 5), a WebSocket that never opened, and the
// device's JSON-RPC errors (PROTOCOL.md section 3). Pure functions of what was received, so they
// are tested one by one; viewer.js decides where the sentence is shown.
//
// Each sentence ends with the code in parentheses: what a person reports to an operator.

// MQTT 3.1.1 CONNACK return codes (section 3.2.2.3).
const CONNACK_V3 = {
  1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
  4: "bad user name or password", 5: "not authorized",
};

// MQTT 5 reason codes (section 2.4) that CONNACK, PUBACK, SUBACK and DISCONNECT carry.
const REASONS_V5 = {
  0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
  0x83: "implementation specific error", 0x84: "unsupported protocol version",
  0x85: "client identifier not valid", 0x86: "bad user name or password",
  0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy", 0x8a: "banned",
  0x8b: "server shutting down", 0x8c: "bad authentication method", 0x8d: "keep alive timeout",
  0x8e: "session taken over", 0x8f: "topic filter invalid", 0x90: "topic name invalid",
  0x91: "packet identifier in use", 0x93: "receive maximum exceeded", 0x94: "topic alias invalid",
  0x95: "packet too large", 0x96: "message rate too high", 0x97: "quota exceeded",
  0x98: "administrative action", 0x99: "payload format invalid", 0x9a: "retain not supported",
  0x9b: "QoS not supported", 0x9c: "use another server", 0x9d: "server moved",
  0x9e: "shared subscriptions not supported", 0x9f: "connection rate exceeded",
  0xa0: "maximum connect time", 0xa1: "subscription identifiers not supported",
  0xa2: "wildcard subscriptions not supported",
};

export const RPC_TIMEOUT_S = 15;

/** The reason code's name in the MQTT version it came in, or "code N". */
export function reasonName(code, version) {
  const names = version === 4 ? CONNACK_V3 : REASONS_V5;
  return names[code] ?? `code ${code}`;
}

const codeNote = (code, version) =>
  `(MQTT ${version === 4 ? "3.1.1" : "5"} ${version === 4 ? "return" : "reason"} code ${code}: ${reasonName(code, version)})`;

// The CONNACK refusals that no other protocol version would change: retrying is pointless.
const FINAL_V5 = new Set([0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x9c, 0x9d, 0x9f]);

/** True when a refused MQTT 5 CONNECT is worth trying again as MQTT 3.1.1. */
export function worthV311(code) {
  return typeof code !== "number" || !FINAL_V5.has(code);
}

/** Why the broker refused the CONNECT, as one sentence; `who` = {broker, username, client}. */
export function connackSentence(code, version, who) {
  const v3 = version === 4;
  const user = who.username ? `the account "${who.username}"` : "a login without a user name";
  const note = codeNote(code, version);
  if ((v3 && code === 4) || code === 0x86 || code === 0x8c) {
    return `The broker refused ${user}: wrong user name or password ${note}.`;
  }
  if ((v3 && code === 5) || code === 0x87) {
    const hint = who.username ? "the password is wrong or the account is not in its password file"
      : "it takes no anonymous clients: enter a user name and password";
    return `The broker refused ${user}: ${hint} ${note}.`;
  }
  if ((v3 && code === 2) || code === 0x85) {
    return `The broker refused the client id "${who.client}": leave Client id empty to use the user name, or pick a shorter one of letters, digits and - ${note}.`;
  }
  if ((v3 && code === 3) || code === 0x88 || code === 0x89) {
    return `The broker at ${who.broker} is up but not taking clients now; try again later ${note}.`;
  }
  if ((v3 && code === 1) || code === 0x84) {
    return `The broker at ${who.broker} speaks neither MQTT 5 nor 3.1.1 ${note}.`;
  }
  if (code === 0x8a) return `The broker has banned ${user} ${note}.`;
  if (code === 0x9f) return `The broker refuses new connections from here for now: too many too fast; wait and retry ${note}.`;
  if (code === 0x9c || code === 0x9d) return `The broker sends its clients to another server; ask its operator for the new URL ${note}.`;
  return `The broker refused the connection ${note}.`;
}

/** The WebSocket closed before any CONNACK: nothing answered, or TLS failed (browsers do not
 *  say which). `pageProtocol` is location.protocol. */
export function unreachableSentence(broker, pageProtocol) {
  let url;
  try {
    url = new URL(broker);
  } catch {
    return `"${broker}" is not a broker URL: use ws://host:port/ or wss://host:port/.`;
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    return `"${broker}" is not a WebSocket URL: browsers reach MQTT brokers over ws:// or wss:// only.`;
  }
  if (url.protocol === "ws:" && pageProtocol === "https:") {
    return `This page was loaded over https, so the browser will not open the plain ws:// connection to ${broker}: use wss://.`;
  }
  const tls = url.protocol === "wss:"
    ? ` If it is listening, the browser may not trust its TLS certificate: open https://${url.host}/ in this browser to see the certificate error, and install the fleet CA or use a certificate the browser trusts.`
    : "";
  return `No MQTT connection to ${broker}: nothing answered the WebSocket there (wrong host or port, a firewall, or no websockets listener).${tls}`;
}

/** The broker ended a connection that was up: DISCONNECT's reason (MQTT 5) or none. */
export function disconnectSentence(code, who) {
  if (code === 0x8e) {
    return `The broker closed this connection: another connection logged in as "${who.client}" (the broker allows one per account and client id: another tab?) ${codeNote(code, 5)}.`;
  }
  if (code === 0x8b) return `The broker is shutting down; the page reconnects when it is back ${codeNote(code, 5)}.`;
  if (code === 0x98) return `The broker's operator closed this connection ${codeNote(code, 5)}.`;
  if (typeof code === "number" && code !== 0) {
    return `The broker closed this connection ${codeNote(code, 5)}; the page reconnects.`;
  }
  // mosquitto 2.0 sends no DISCONNECT when a second login takes the client id over: it only
  // closes the socket, so the likely causes are named together.
  return `The broker closed this connection without saying why: another login with the account's client id "${who.client}" (another tab?), a broker restart or the network; the page reconnects.`;
}

/** The broker refused a QoS 1 PUBLISH (MQTT 5 PUBACK >= 0x80). */
export function pubackSentence(topic, code, who) {
  const note = codeNote(code, 5);
  if (code === 0x87) {
    const own = who.rpcTopic ? ` The ACL lets client "${who.client}" publish only on its own topic (${who.rpcTopic});` : "";
    const bound = " where the broker sets the client id from the user name (use_username_as_clientid), leave Client id empty or make it the user name.";
    return `The broker's ACL refused the request on ${topic}: this account may not send to the device.${own}${bound} ${note}`.trim();
  }
  if (code === 0x97 || code === 0x96) return `The broker refused the request on ${topic}: this account sends too much; wait and retry ${note}.`;
  if (code === 0x95) return `The broker refused the request on ${topic}: too large for it ${note}.`;
  return `The broker refused the request on ${topic} ${note}.`;
}

/** The broker refused a SUBSCRIBE (SUBACK >= 0x80; 0x80 is also 3.1.1's only failure). */
export function subackSentence(topic, code) {
  if (code === 0x87 || code === 0x80) {
    return `The broker refused the subscription to ${topic}: this account may not read it (the broker's ACL; is the topic prefix right?) (SUBACK code ${code}).`;
  }
  return `The broker refused the subscription to ${topic} (SUBACK code ${code}: ${reasonName(code, 5)}).`;
}

/** No response to a request in time. `status` is the device's retained status, if any. */
export function timeoutSentence(method, device, status, version) {
  if (status && status.state !== "online") {
    return `${method}: no answer from ${device}: it is ${String(status.state)} (its last status says so).`;
  }
  const known = status ? "" : ` No status from ${device} has been seen: is the device id right?`;
  const silent = version === 4
    ? " Over MQTT 3.1.1 a broker drops a request its ACL refuses without saying so: check that the client id is the user name where the broker requires it."
    : "";
  return `${method}: no answer from ${device} within ${RPC_TIMEOUT_S} s.${known}${silent}`;
}

const BUSY = {
  viewer_limit: "it already streams to as many viewers as it allows; try again when one leaves",
  client_limit: "this client already has as many sessions as the device allows one client (another tab?); close one first",
  shutting_down: "it is shutting down",
};

/** A JSON-RPC error response from the device; `who` = {client, device}. */
export function rpcSentence(method, code, message, data, who) {
  const text = String(message ?? "");
  const detail = text.replace(/^(unauthorized|busy|rate limited|negotiation failed|camera unavailable|invalid params|method not found)\s*:\s*/i, "");
  const tail = `(${code}${text ? ` ${text}` : ""})`;
  const dev = who.device ? `The device ${who.device}` : "The device";
  switch (code) {
    case -32001:
      if (/has no role/.test(text)) {
        return `${dev} refused ${method}: the client id "${who.client}" matches none of its [access] patterns (by default viewer-*, ops-*, admin-*), so it may call nothing; use an account named like viewer-NAME ${tail}.`;
      }
      return `${dev} refused ${method} for "${who.client}": ${detail || "its role may not call it"} ${tail}.`;
    case -32002: {
      const reason = data && typeof data === "object" ? BUSY[data.reason] : undefined;
      return `${dev} is busy: ${reason ?? (detail || "viewer limit reached")} ${tail}.`;
    }
    case -32005:
      return `${dev} is limiting this client: too many requests in a short time; wait a few seconds and try again ${tail}.`;
    case -32003:
      return `${dev} no longer knows this session (it ended, or the device restarted); press Play again ${tail}.`;
    case -32004:
      return `${dev} and this browser could not agree on a stream: ${detail || "incompatible offer"} ${tail}.`;
    case -32006:
      return `${dev}'s camera is not delivering video now; try again shortly or check the device ${tail}.`;
    case -32602:
      return `${dev} refused the parameters of ${method}: ${detail} ${tail}.`;
    case -32601:
      return `${dev} does not offer ${method} (an older agent?) ${tail}.`;
    case -32600:
    case -32700:
      return `${dev} could not read the ${method} request ${tail}.`;
    case -32603:
      return `${dev} failed on ${method} with an internal error; its log has the details ${tail}.`;
    default:
      return `${dev} answered ${method} with an error ${tail}.`;
  }
}
