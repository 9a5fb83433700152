export default function handler(event, context) {
  return () => 1;  // a function: JSON.stringify gives undefined
}
