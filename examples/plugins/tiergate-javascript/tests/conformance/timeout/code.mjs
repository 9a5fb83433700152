export default function handler(event, context) {
  for (;;) {}
}
