<?php
// This file is part of the zmsync project, the local_student_dashboard Moodle plugin.
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

/**
 * Plain-PHP tests of money formatting under Moodle's English locale (en_AU), with PHP's intl and without.
 *
 * Included by run.php (uses its check() and same()). ci-check.sh also runs run.php with `php -n`, where
 * intl is not loaded at all.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

use local_student_dashboard\local\formatter;

$hasintl = class_exists('\NumberFormatter');
echo 'currency tests: PHP intl ' . ($hasintl ? 'present (ICU ' . INTL_ICU_VERSION . ')' : 'absent') . "\n";

$formatters = ['without intl' => new formatter('symbol', false)];
if ($hasintl) {
    $formatters['with intl'] = new formatter('symbol', true);
}
foreach ($formatters as $how => $f) {
    same('£15,000.00', $f->money(1500000, 'GBP'), "GBP under en_AU, $how");
    same('-£2,000.00', $f->money(-200000, 'GBP'), "a negative GBP amount, $how");
    same('£0.05', $f->money(5, 'GBP'), "five pence, $how");
    same('€1,234,567.89', $f->money(123456789, 'EUR'), "EUR, $how");
    same('$10,000.00', $f->money(1000000, 'USD'), "USD, $how");
    same('$10,000.00', $f->money(1000000, 'AUD'), "AUD, $how");
    same("R\u{00A0}15,000.00", $f->money(1500000, 'ZAR'), "a letter symbol is spaced (no-break), $how");
    same("AED\u{00A0}15,000.00", $f->money(1500000, 'AED'), "a currency without an English symbol keeps its code, $how");
    same('15,000.00', $f->money(1500000, null), "no currency, $how");
}
$code = new formatter('code', $hasintl);
same('GBP 15,000.00', $code->money(1500000, 'GBP'), 'the code setting');
same('GBP -2,000.00', $code->money(-200000, 'GBP'), 'the code setting, negative');

if ($hasintl) {
    // The problem the symbol setting solves: ICU alone prints other currencies by code in en_AU.
    $icu = (new NumberFormatter('en_AU', NumberFormatter::CURRENCY))->formatCurrency(15000, 'GBP');
    check(str_contains($icu, 'GBP'), 'ICU prints GBP by code under en_AU (the reason for the setting)', 'GBP …', $icu);
    // The table used without intl is ICU's own data, and both ways print the same strings.
    $withintl = new formatter('symbol', true);
    $without = new formatter('symbol', false);
    mt_srand(18006);
    foreach (formatter::SYMBOLS as $currency => $symbol) {
        same($symbol, $withintl->symbol($currency), "the fallback symbol of $currency is ICU's");
        if ($currency === 'JPY') {
            continue; // ICU prints yen without decimals.
        }
        foreach ([0, 1, -1, 99, 100000, mt_rand(1, PHP_INT_MAX >> 20), -mt_rand(1, 1000000000)] as $cents) {
            same($withintl->money($cents, $currency), $without->money($cents, $currency),
                "$currency $cents is printed alike with and without intl");
        }
    }
} else {
    echo "currency tests: intl absent, the with-intl cases were skipped\n";
}

// On the page: the finance summary and the payments in pounds.
[$html] = render_dashboard((object) ['id' => 34, 'firstname' => 'Jo', 'lastname' => 'Bloggs', 'email' => 'jo@example.edu',
    'idnumber' => 'S1'], [
    'registrations' => [(object) ['zohoid' => 'R1', 'program' => 'BTEC Level 3 Business', 'registrationdate' => '2025-09-01',
        'totalfee' => '15000.00', 'scholarshippercent' => '10.00', 'currency' => 'GBP', 'status' => 'Active',
        'timemodified' => 0]],
    'payments' => [(object) ['registrationzohoid' => 'R1', 'amount' => '2500.00', 'status' => 'Paid',
        'paymentdate' => '2025-10-01', 'duedate' => null, 'timemodified' => 0]],
]);
$text = visible_text($html);
foreach (['Total fee £15,000.00', '10% (-£1,500.00)', 'Net amount £13,500.00', 'Total paid £2,500.00',
        'Remaining £11,000.00', '1 October 2025 £2,500.00 Paid'] as $expected) {
    check(str_contains($text, $expected), 'the page shows ' . $expected, $expected, $text);
}
check(!str_contains($text, 'GBP'), 'the page never shows the code GBP', 'no GBP', $text);
