export default function handler(event, context) {
  console.log("saying hello");
  return { message: "hello from wasm" };
}
