// Send the signed payment form to Uniteller as soon as the page is shown.
document.getElementById("pay-form").submit();
