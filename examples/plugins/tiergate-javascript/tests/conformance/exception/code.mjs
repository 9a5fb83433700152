export default function handler(event, context) {
  throw new Error("the input was not acceptable");
}
