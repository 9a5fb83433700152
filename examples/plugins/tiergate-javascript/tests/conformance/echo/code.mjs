export default function handler(event, context) {
  return event;
}
