// Reads a JSON array of strings on stdin and prints, for each, what JavaScript makes of it:
// JSON.stringify(JSON.parse(text)), or null where JSON.parse throws.
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (input += d)).on('end', () => {
  const out = JSON.parse(input).map((text) => {
    try {
      return JSON.stringify(JSON.parse(text));
    } catch (e) {
      return null;
    }
  });
  process.stdout.write(JSON.stringify(out));
});
