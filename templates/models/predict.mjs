// A starter Node model: the length of each input string.
//
// Deploy it with:
//   clipper deploy-model strlen --version 1 --input-type strings --framework node \
//       --predict templates/models/predict.mjs:predict --link words

/** @param {string[]} inputs one string per query in the batch */
export function predict(inputs) {
  return inputs.map((text) => text.length);
}
