export default function handler(event, context) {
  process.exit(7);
}
