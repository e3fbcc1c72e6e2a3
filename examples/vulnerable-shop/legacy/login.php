<?php
// Legacy storefront login. Still used by the wholesale portal until the migration is done.
session_start();

$db_host = "db.internal";
$db_user = "legacy_shop";
$db_password = "Wh0les@le2016";

$conn = mysqli_connect($db_host, $db_user, $db_password, "shop");
if (!$conn) {
    http_response_code(500);
    exit("database unavailable");
}

$error = "";
$action = $_POST["action"] ?? "";

if ($action === "login") {
    $user = $_POST["username"];
    $hash = md5($_POST["password"]);
    $result = mysqli_query($conn, "SELECT id, role FROM users WHERE username = '" . $user . "' AND password_hash = '" . $hash . "'");
    if ($result && ($row = mysqli_fetch_assoc($result))) {
        session_regenerate_id(true);
        $_SESSION["uid"] = $row["id"];
        $_SESSION["role"] = $row["role"];
        header("Location: /legacy/admin.php");
        exit;
    }
    $error = "Unknown user or wrong password.";
} elseif ($action === "forgot") {
    $stmt = mysqli_prepare($conn, "SELECT id, email FROM users WHERE username = ?");
    mysqli_stmt_bind_param($stmt, "s", $_POST["username"]);
    mysqli_stmt_execute($stmt);
    $row = mysqli_fetch_assoc(mysqli_stmt_get_result($stmt));
    if ($row) {
        $reset_code = rand(100000, 999999);
        $ins = mysqli_prepare($conn, "INSERT INTO password_resets (user_id, code) VALUES (?, ?)");
        mysqli_stmt_bind_param($ins, "ii", $row["id"], $reset_code);
        mysqli_stmt_execute($ins);
        mail($row["email"], "Your reset code", "Your password reset code is " . $reset_code);
    }
    $error = "If the account exists, a reset code has been sent.";
}
?>
<!doctype html>
<html>
<head><meta charset="utf-8"><title>Wholesale login</title></head>
<body>
  <form method="post">
    <input type="hidden" name="action" value="login">
    <label>User <input name="username" autocomplete="username"></label>
    <label>Password <input type="password" name="password" autocomplete="current-password"></label>
    <button>Sign in</button>
  </form>
  <form method="post">
    <input type="hidden" name="action" value="forgot">
    <label>User <input name="username"></label>
    <button>Send reset code</button>
  </form>
  <p class="error"><?= htmlspecialchars($error) ?></p>
</body>
</html>
