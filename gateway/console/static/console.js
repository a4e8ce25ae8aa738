/* Veta console: light progressive enhancement. Every page works without this file.
 *
 * 1. Live fine weight on forms marked data-fine-weight: fine = gross x fineness / 1000,
 *    exact to the milligram. Computed with integers (BigInt), never floats: grams become
 *    integer milligrams, per mille becomes integer tenths, and the product is divided by
 *    10,000 with round-half-even, as the services do.
 * 2. A page marked data-refresh-seconds (an order waiting for its reservation) reloads
 *    itself a few times.
 * 3. After a refused form, focus moves to the first field in error.
 */
(function () {
  "use strict";

  // "1000.5" or "1000,5" -> BigInt of units at `places` decimals, or null if not a number.
  function toUnits(text, places) {
    var match = /^\s*(\d+)(?:[.,](\d*))?\s*$/.exec(text || "");
    if (!match) { return null; }
    var fraction = match[2] || "";
    if (fraction.length > places) { return null; }
    while (fraction.length < places) { fraction += "0"; }
    return BigInt(match[1] + fraction);
  }

  function fineMilligrams(grossMg, finenessTenths) {
    var product = grossMg * finenessTenths;
    var quotient = product / 10000n;
    var remainder = product % 10000n;
    if (remainder > 5000n || (remainder === 5000n && quotient % 2n === 1n)) {
      quotient += 1n;
    }
    return quotient;
  }

  function formatGrams(mg, lang, decimalMark) {
    var whole = mg / 1000n;
    var fraction = (mg % 1000n).toString().padStart(3, "0");
    var grouped = new Intl.NumberFormat(lang, { useGrouping: true }).format(whole);
    return grouped + decimalMark + fraction + " g";
  }

  function liveFineWeight(form) {
    var gross = form.querySelector("[data-gross]");
    var fineness = form.querySelector("[data-fineness]");
    var output = form.querySelector("[data-fine-output]");
    if (!gross || !fineness || !output) { return; }
    var lang = form.getAttribute("data-lang") || "en";
    var mark = form.getAttribute("data-decimal-mark") || ".";
    function update() {
      var grossMg = toUnits(gross.value, 3);
      var tenths = toUnits(fineness.value, 1);
      if (grossMg === null || tenths === null || tenths > 9999n) {
        output.textContent = "—";
        return;
      }
      output.textContent = formatGrams(fineMilligrams(grossMg, tenths), lang, mark);
    }
    gross.addEventListener("input", update);
    fineness.addEventListener("input", update);
    update();
  }

  function refreshWhilePending() {
    var seconds = Number(document.body.getAttribute("data-refresh-seconds"));
    if (!seconds) { return; }
    var key = "veta-refresh:" + location.pathname;
    var count = Number(sessionStorage.getItem(key) || "0");
    if (count >= 15) { return; }
    sessionStorage.setItem(key, String(count + 1));
    setTimeout(function () { location.reload(); }, seconds * 1000);
  }

  function focusFirstError() {
    var field = document.querySelector("[aria-invalid=true]");
    var summary = document.querySelector(".error-summary");
    if (field) { field.focus(); } else if (summary) { summary.focus(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-fine-weight]").forEach(liveFineWeight);
    refreshWhilePending();
    focusFirstError();
  });

  // Exposed for the browser tests, which check the arithmetic on awkward values.
  window.vetaFineWeight = function (gross, fineness) {
    var grossMg = toUnits(gross, 3);
    var tenths = toUnits(fineness, 1);
    if (grossMg === null || tenths === null) { return null; }
    var mg = fineMilligrams(grossMg, tenths);
    return (mg / 1000n).toString() + "." + (mg % 1000n).toString().padStart(3, "0");
  };
}());
