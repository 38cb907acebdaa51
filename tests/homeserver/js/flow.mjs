// matrix-js-sdk drives the example homeserver: register, login, createRoom, a
// second user joins, send, both clients' /sync loops see the message, logout.
// Usage: node flow.mjs <base url>; prints one JSON object of results.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("warn");
const baseUrl = process.argv[2];
const suffix = Math.random().toString(16).slice(2, 10);
const results = {};

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  ]);
}

async function register(name) {
  const anonymous = sdk.createClient({ baseUrl });
  const response = await anonymous.registerRequest({
    username: name,
    password: "correct horse",
    auth: { type: "m.login.dummy" },
    initial_device_display_name: "js-sdk",
  });
  return response;
}

async function login(name) {
  const anonymous = sdk.createClient({ baseUrl });
  return anonymous.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: name },
    password: "correct horse",
    initial_device_display_name: "js-sdk login",
  });
}

function started(credentials) {
  const client = sdk.createClient({
    baseUrl,
    accessToken: credentials.access_token,
    userId: credentials.user_id,
    deviceId: credentials.device_id,
  });
  const prepared = new Promise((resolve, reject) => {
    client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
      if (state === "PREPARED") resolve();
      if (state === "ERROR") reject(data?.error ?? new Error("sync error"));
    });
  });
  client.startClient({ initialSyncLimit: 10 });
  return { client, prepared };
}

function messageSeen(client, roomId, body) {
  return new Promise((resolve) => {
    client.on(sdk.RoomEvent.Timeline, (event, room) => {
      const message = event.getType() === "m.room.message" && event.getContent().body === body;
      if (room?.roomId === roomId && message) {
        resolve(event.getId());
      }
    });
  });
}

const aliceName = `jsalice${suffix}`;
const bobName = `jsbob${suffix}`;
const registered = await register(aliceName);
results.registered_user_id = registered.user_id;
await register(bobName);
const alice = await login(aliceName);
const bob = await login(bobName);
results.login_user_id = alice.user_id;

const a = started(alice);
const b = started(bob);
await withTimeout(Promise.all([a.prepared, b.prepared]), 20000, "initial sync");
results.versions = (await a.client.getVersions()).versions;

const { room_id: roomId } = await a.client.createRoom({ preset: "public_chat", name: "js room" });
results.room_id = roomId;
await b.client.joinRoom(roomId);
const body = `hello from matrix-js-sdk ${suffix}`;
const seenByBob = messageSeen(b.client, roomId, body);
const sent = await a.client.sendTextMessage(roomId, body);
results.sent_event_id = sent.event_id;
results.bob_saw = await withTimeout(seenByBob, 20000, "message in bob's /sync");
// Alice's own copy: the local echo, replaced by the event her /sync brings back.
results.alice_saw = await withTimeout(
  (async () => {
    for (;;) {
      const events = a.client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? [];
      const mine = events.find((event) => event.getId() === sent.event_id && !event.status);
      if (mine) return mine.getId();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })(),
  20000,
  "message in alice's /sync",
);
const room = b.client.getRoom(roomId);
results.bob_room_name = room?.name;
results.bob_sees_alice_as = room?.getMember(alice.user_id)?.membership;

a.client.stopClient();
b.client.stopClient();
await a.client.logout(true);
try {
  await a.client.whoami();
  results.token_after_logout = "still valid";
} catch (error) {
  results.token_after_logout = error.errcode ?? String(error);
}
await b.client.logout(true);
console.log(JSON.stringify(results));
process.exit(0);
