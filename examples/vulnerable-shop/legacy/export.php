<?php
// Nightly export of wholesale orders to the accounting partner (run from cron via php-cli).

$pdo = new PDO(getenv("LEGACY_DSN"), getenv("LEGACY_DB_USER"), getenv("LEGACY_DB_PASSWORD"), array(
    PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
));

$from = date("Y-m-d", strtotime("yesterday"));
$to = date("Y-m-d");

$stmt = $pdo->prepare("SELECT number, customer, total_cents, created_at FROM orders WHERE created_at >= ? AND created_at < ? ORDER BY number");
$stmt->execute(array($from, $to));

$csv = fopen("php://temp", "w+");
fputcsv($csv, array("number", "customer", "total", "created_at"));
while ($row = $stmt->fetch(PDO::FETCH_ASSOC)) {
    fputcsv($csv, array($row["number"], $row["customer"], number_format($row["total_cents"] / 100, 2, ".", ""), $row["created_at"]));
}
rewind($csv);
$body = stream_get_contents($csv);
fclose($csv);

$ch = curl_init("https://partner-accounting.internal/api/upload");
curl_setopt($ch, CURLOPT_POST, true);
curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
curl_setopt($ch, CURLOPT_SSL_VERIFYPEER, 0);
curl_setopt($ch, CURLOPT_HTTPHEADER, array("Content-Type: text/csv", "X-Export-Date: " . $from));
curl_setopt($ch, CURLOPT_POSTFIELDS, $body);
$response = curl_exec($ch);
$status = curl_getinfo($ch, CURLINFO_HTTP_CODE);
curl_close($ch);

if ($response === false || $status >= 400) {
    fwrite(STDERR, "export for $from failed with HTTP $status\n");
    exit(1);
}
echo "exported orders for $from\n";
