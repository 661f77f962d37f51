// The official Node SDK's long-connection client as its README shows it:
// the three third-party meeting-room event types registered, each handler
// returning at once (the SDK acknowledges when the handler resolves). It
// stores nothing. Started by `cargo bench --bench intake` against the same
// fake gateway as roomcast; APP_ID, APP_SECRET and DOMAIN come from there.
const lark = require('@larksuiteoapi/node-sdk');

const done = async () => {};
const dispatcher = new lark.EventDispatcher({}).register({
  third_party_meeting_room_event_created: done,
  third_party_meeting_room_event_updated: done,
  third_party_meeting_room_event_deleted: done,
});
const client = new lark.WSClient({
  appId: process.env.APP_ID,
  appSecret: process.env.APP_SECRET,
  domain: process.env.DOMAIN,
  loggerLevel: lark.LoggerLevel.error,
});
client.start({ eventDispatcher: dispatcher });
process.on('SIGTERM', () => process.exit(0));
