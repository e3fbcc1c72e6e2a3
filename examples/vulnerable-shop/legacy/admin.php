<?php
// Wholesale back office: dashboard, network check and the discount calculator.
session_start();
if (($_SESSION["role"] ?? "") !== "admin") {
    http_response_code(403);
    exit("forbidden");
}

$prefs = isset($_COOKIE["admin_prefs"]) ? unserialize($_COOKIE["admin_prefs"]) : array("rows" => 50);
$action = $_GET["action"] ?? "dashboard";
?>
<!doctype html>
<html>
<head><meta charset="utf-8"><title>Back office</title></head>
<body>
<nav><a href="?action=dashboard">Dashboard</a> | <a href="?action=ping">Network</a> | <a href="?action=calc">Discounts</a></nav>
<?php
if ($action === "ping" && isset($_GET["host"])) {
    $host = $_GET["host"];
    echo "<h2>Ping " . htmlspecialchars($host) . "</h2><pre>";
    system("ping -c 3 " . $host);
    echo "</pre>";
} elseif ($action === "calc" && $_SERVER["REQUEST_METHOD"] === "POST") {
    // Discount rules are typed in by staff, e.g. "$price * 0.9".
    $price = (float) $_POST["price"];
    $result = eval("return " . $_POST["rule"] . ";");
    echo "<p>Discounted price: " . htmlspecialchars((string) $result) . "</p>";
} else {
    echo "<h2>Dashboard</h2><p>Showing " . (int) $prefs["rows"] . " rows per page.</p>";
}
?>
<form method="post" action="?action=calc">
  <label>Price <input name="price"></label>
  <label>Rule <input name="rule" value="$price * 0.9"></label>
  <button>Calculate</button>
</form>
</body>
</html>
